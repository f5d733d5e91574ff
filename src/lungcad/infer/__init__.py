"""lungcad.infer"""
