"""The PyTorch-examples MNIST CNN and its input normalisation, shared by bench/torch_anchor.py (serving, on a GPU)
and bench/torch_train.py (one training epoch on the CPU). torch is imported only when the class is asked for, so a
script may import this module where only numpy is installed."""

MEAN, STD = 0.1307, 0.3081


def cnn_class():
    """The CNN as an nn.Module class: conv1 32 → conv2 64 → max-pool → dropout 0.25 → fc1 128 → dropout 0.5 → fc2."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = torch.flatten(self.dropout1(x), 1)
            x = self.dropout2(F.relu(self.fc1(x)))
            return F.log_softmax(self.fc2(x), dim=1)

    return Net
