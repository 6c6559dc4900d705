"""iommubench: what IOMMU page-table locking and IOVA allocation strategies cost under DMA load."""

__version__ = "0.1.0"
