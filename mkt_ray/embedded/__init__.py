"""Embedded stand-ins for the production services (the Kafka-compatible broker), and their clean-up."""

from mkt_ray.embedded._broker import EmbeddedBroker, free_port
from mkt_ray.embedded._certs import CertificatePair, self_signed_certificate
from mkt_ray.embedded._data_dir import DataDirLock
from mkt_ray.embedded._earlier_run import earlier_runs, set_aside_earlier_run
from mkt_ray.embedded._reaper import Reaper, descendants, process_name, still_running

__all__ = ["CertificatePair", "DataDirLock", "EmbeddedBroker", "Reaper", "descendants", "earlier_runs", "free_port",
           "process_name", "self_signed_certificate", "set_aside_earlier_run", "still_running"]
