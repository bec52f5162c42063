"""The results report: the paper's numbers beside ours, with 95 % intervals, figures and provenance.

A :class:`~hourglass.report.summary.Summary` is computed from the inputs once; results.md, the figures and the JSON
files are rendered from it. One concern per module:

- ``paper``: the paper's published numbers, their footnotes, the reference variant, the authors' released files;
- ``inputs``: where the report reads and writes, discovery and loading of ``models/<variant>/seed-<n>/``, imported
  and other model directories, and a variant's seeds averaged;
- ``bootstrap``: the bootstrap over validation people (intervals, paired differences) from the predictions;
- ``costs``: model size, training time and throughput;
- ``comparisons``: the decisions: the best variant, the ordering against the paper's Figure 4;
- ``examples``: the best and worst validation people of the example figures;
- ``provenance``: git state, data version, SHA-256 digests;
- ``summary``: the data model, computed from all of the above; summary.json, scores.json, curves.csv;
- ``tables`` and ``markdown``: results.md rendered from the summary;
- ``figures``: Figures 4 and 5 and the example figures rendered from the summary;
- ``build``: the stage: compute, write every output, log to the sweep's MLflow parent run.
"""
