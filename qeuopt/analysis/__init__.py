"""Analysis of a study's results: Taguchi effects, SN ratios and ANOVA (``effects``, pure),
the study's observations (``observations``), the study analysis (``study``), rating
prediction with the T-method (``rating_prediction``) and the text report (``report``)."""
