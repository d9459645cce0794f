"""Keys of the appliance: device identity, epoch keys, data keys."""
