"""The shop's orders API: takes orders over HTTP and publishes them to event hub `orders`."""
