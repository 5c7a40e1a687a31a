"""concerto3d.models"""
