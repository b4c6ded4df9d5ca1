"""Given code of the transformer_lab notebook: the data plumbing you need not read to do the lab.

* batched loaders (``batched_loader``): a whole batch gathered with one tensor index, fast on a CPU;
* CIFAR-100 (``load_cifar100``): torchvision's download and loading, with a message saying where the
  files must go when they cannot be downloaded;
* ResNet34 features (``extract_features``, ``cached_features``): the images resized to 224x224,
  normalised with the ImageNet statistics and passed through a pretrained ResNet34 without its
  classifier, extracted once and cached in a file;
* the anomaly sets (``SetAnomalyDataset``, ``SetBatchLoader``): nine images of one class and one of
  another, drawn afresh for training and fixed (seeded) for validation and testing; the balanced
  train/validation split; the synthetic features of the quick mode.

Keep this file next to the notebook (on Colab: in ``/content``, the *Files* pane) and do not edit it:
grading uses its own copy.
"""

#@imports


#@include _checks:_fmt,check_tensor


#@include reverse:BatchIndexSampler,batched_loader


#@include cifar:*


#@include features:*


#@include set_anomaly:*
