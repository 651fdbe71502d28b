"""Training: ``satsr.train.trainer.train_stage`` runs one stage (pretrain | finetune) of one
architecture. Its parts: state (StageRun, TrainState), init_weights (the weights a stage starts
from), strategy (devices, chief, precision), schedule (optimizer, learning rate), loop (epochs and
train steps), validation (the evaluate metric stack), samples (MLflow figure), checkpoints, losses."""
