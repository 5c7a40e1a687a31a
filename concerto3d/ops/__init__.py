"""concerto3d.ops"""
