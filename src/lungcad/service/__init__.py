"""lungcad.service"""
