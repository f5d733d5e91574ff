"""lungcad.data"""
