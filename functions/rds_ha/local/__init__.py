"""Local AWS for the demo and the tests (moto). Never imported by a Lambda handler."""
