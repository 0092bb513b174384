"""Bare Flower FedAvg with Opacus DP-SGD: the baseline the round-overhead benchmark runs
on the same SuperLink, SuperNodes, data, model and DP settings as a Tallystick job."""
