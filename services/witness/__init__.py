"""``sealtrail witness``: a c2sp.org/tlog-witness witness that cosigns other logs' checkpoints."""
