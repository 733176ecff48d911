"""Camera connectors: sources (synthetic, folder, OpenCV) that publish encoded frames to Kafka."""
