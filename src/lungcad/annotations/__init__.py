"""lungcad.annotations"""
