"""The data set format and what it is made of: record readers, labels and label rules, patient-level splits, merge, download, the synthetic generator."""
