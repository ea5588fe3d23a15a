from .aux_loss_classifier import (AuxLossImageClassifier, dense_targets,
                                  feature_distance)

__all__ = ['AuxLossImageClassifier', 'dense_targets', 'feature_distance']
