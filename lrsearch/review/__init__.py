"""What a study shows: the report and its statistics (``report``), the charts (``figures``, ``plots``), the
dashboard's note (``dashboard``), the report page (``page``) and each trial's curves as artifacts."""
