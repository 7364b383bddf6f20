"""Real Apache Kafka for the apache_kafka tests: see launcher.py."""
