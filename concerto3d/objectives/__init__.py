"""concerto3d.objectives"""
