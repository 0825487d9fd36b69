"""The GitHub Action's side: inputs, the runner's file protocol, the job summary, the GitHub API."""
