"""MLflow: the only stage that imports mlflow. ``tracker`` writes and reads runs."""
