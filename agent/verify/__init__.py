"""Verification: does a suspect model react to the user's marks? (The statistics first; models and reports follow.)"""
