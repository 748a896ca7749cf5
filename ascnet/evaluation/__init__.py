"""Evaluation: metrics, exactly-once inference, video retrieval, official-split summaries.

Modules are imported on use (``from ascnet.evaluation.retrieval import evaluate_retrieval``) so that
importing the package needs neither faiss nor the data pipeline.
"""
