"""lungcad.train"""
