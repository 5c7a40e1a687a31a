"""concerto3d.evaluation"""
