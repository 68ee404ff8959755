"""End-to-end tests: real SIP peers (SIPp, baresip) on loopback."""
