"""Looking at a world model (nothing here holds a rule of the game):

- :mod:`~gridmarl_wm.viewing.viewer`: real and imagined play side by side, heat maps, rewind, GIF export
  (``gridmarl-wm view``);
- :mod:`~gridmarl_wm.viewing.plots`: real vs predicted next observations, open-loop curves, the TV
  histogram.

Neither is imported here: each loads its drawing library (pygame, matplotlib) only when used.
"""
