"""lungcad.synth"""
