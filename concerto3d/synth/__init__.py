"""concerto3d.synth"""
