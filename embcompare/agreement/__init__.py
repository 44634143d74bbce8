"""Do the models agree? Neighbourhood agreement (mutual k-NN, Jaccard@k, RBO) from the top-k
neighbours the similarity stage writes, linear CKA streamed over row blocks, and an
anisotropy audit per model (docs/definitions.md, Model agreement)."""
