"""lungcad.evaluate"""
