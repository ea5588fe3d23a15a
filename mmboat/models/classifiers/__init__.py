from .dense_aux_classifier import DenseAuxImageClassifier, dense_targets

__all__ = ['DenseAuxImageClassifier', 'dense_targets']
