"""concerto3d.data"""
