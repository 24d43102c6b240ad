"""Training the MOS face detector (:mod:`facemtl.models.mos`): anchor targets, the multi-task
detection loss with miss statistics, the image sources with MOS's data-feedback sampling, and
the loop that ``facemtl train --config mos`` runs."""
