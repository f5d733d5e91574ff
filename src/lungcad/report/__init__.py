"""lungcad.report"""
