"""Local AWS for the demo and the tests (moto, its fidelity layer, a simulated clock, sample events).
Never imported by a Lambda handler. May import `core` and `adapters` (it builds the lab's AWS resources).
"""
