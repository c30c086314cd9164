"""Fakes of what cannot run here (engines, exporters, IM services), each speaking the real wire format."""
