"""Code every acoflow service shares: settings, logging, the event envelope, money, Kafka and PostgreSQL helpers."""
