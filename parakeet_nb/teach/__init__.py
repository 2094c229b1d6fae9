"""What the notebooks and the site show: plots, diagrams, the widget, the notebook runner.

* :mod:`~parakeet_nb.teach.plots`, :mod:`~parakeet_nb.teach.diagrams`,
  :mod:`~parakeet_nb.teach.layout_figures`: matplotlib figures (no pyplot state).
* :mod:`~parakeet_nb.teach.explorer`: the layout explorer widget and its pure core.
* :mod:`~parakeet_nb.teach.notebooks`: execute the notebooks; :mod:`~parakeet_nb.teach.site`:
  the static HTML site; :mod:`~parakeet_nb.teach.envcheck`: what this machine can do.
"""
