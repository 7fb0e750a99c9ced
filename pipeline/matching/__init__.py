"""Clip embeddings to identity links: the matcher, its gallery, and the matcher service that
runs it on the workers' embeddings from Kafka (`reidstream matcher`)."""

from __future__ import annotations
