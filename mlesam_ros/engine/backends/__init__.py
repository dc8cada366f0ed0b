"""Inference backends behind ``mlesam_ros.engine.segmenter.Segmenter``: one module each."""
