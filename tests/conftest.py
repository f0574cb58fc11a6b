"""Session-wide fixtures. Fixture families live in tests/fixtures_*.py and are imported here."""

from tests.fixtures_broker import broker, kafka_conf, kafka_settings, new_topic  # noqa: F401
from tests.fixtures_ray import ray_session  # noqa: F401
from tests.fixtures_serve import serve_api  # noqa: F401
