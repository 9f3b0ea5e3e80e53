"""present: a result's folder, its report and tables, the words, the λ explorer and the figures."""
