"""Measurement and transport: sensor signal models, MQTT topics, encoding and
decoding against the contract, the plant's publisher, the twin's ingest and
the embedded broker. Imports ``twin`` only.
"""
