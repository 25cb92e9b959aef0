"""The shop's notifier: pushes every order placed to the slice's SignalR hub."""
