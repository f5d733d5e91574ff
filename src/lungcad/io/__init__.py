"""lungcad.io"""
