"""concerto3d.io"""
