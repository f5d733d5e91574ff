"""lungcad.preprocess"""
