"""One module per database (records, labels, patients for the data set), and `build`, which turns them into a data set."""
