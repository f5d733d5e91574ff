"""lungcad.model"""
