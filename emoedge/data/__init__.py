"""EMOTIC data: official .mat and preprocessed CSV readers, the sample writer, transforms, the dataset."""
