"""concerto3d.visualization"""
