"""The local stack without Docker: a Kafka broker and a PostgreSQL cluster on 127.0.0.1."""
