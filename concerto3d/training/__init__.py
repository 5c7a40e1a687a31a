"""concerto3d.training"""
